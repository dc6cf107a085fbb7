"""A direct-collocation tracking engine in CasADi: the fast ground-truth engine (issue 9).

The only package that imports `casadi`. It must never share a process with `opensim` (the
opensim wheel bundles its own CasADi/IPOPT under the same library names, DESIGN.md trap 2):
run it as `python -m collocation SPEC.json`. Nothing here imports opensim or torch.
"""
