"""The execution plan: what a checked program asks to run, as one hashed JSON document.

It owns the compiler from a checked workspace to the plan (`compiler`), the plan
document and its schema (`document`), the typed, frozen views the runtime reads it
through (`views`), the cost estimate (`estimate`) and the human explanation
(`explain`). It imports `prompts`, `library`, `language` and `core`.
"""

from grpo_dsl.plan.compiler import compile, expression_tree, load_plan, workspace_of
from grpo_dsl.plan.document import PLAN_SCHEMA, Plan, PlanError
from grpo_dsl.plan.views import (
    BudgetLimits,
    CostEstimate,
    DatasetView,
    EmitView,
    EvaluateView,
    LearnView,
    ModelView,
    Schedule,
    TaskView,
)

__all__ = [
    "PLAN_SCHEMA",
    "BudgetLimits",
    "CostEstimate",
    "DatasetView",
    "EmitView",
    "EvaluateView",
    "LearnView",
    "ModelView",
    "Plan",
    "PlanError",
    "Schedule",
    "TaskView",
    "compile",
    "expression_tree",
    "load_plan",
    "workspace_of",
]
