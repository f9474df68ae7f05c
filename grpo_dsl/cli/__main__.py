"""`python -m grpo_dsl.cli`: the `grpo` command."""

import sys

from grpo_dsl.cli.main import main

sys.exit(main())
