"""Does a library help: statistics, paired sampling, and the `evaluate` blocks.

It owns the statistics (`stats`: pass@k, bootstrap intervals, the paired sign-flip
test), paired sampling of libraries on the same questions and seeds (`sampling`,
shared with the validation gate), the result documents (`results`) and running an
`evaluate` block (`evaluate`). It imports every layer below it, up to `modules`.
"""
