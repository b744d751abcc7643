"""Pick the build: the array build by default, the pyomo reference on request."""

from __future__ import annotations

from optimizer.formulation import Formulation
from optimizer.options import Engine, SolveOptions
from optimizer.solution import EngineRun


def run(form: Formulation, options: SolveOptions) -> EngineRun:
    if options.engine is Engine.PYOMO:
        from optimizer import pyomo_build  # pyomo costs ~1 s to import: only when asked

        return pyomo_build.solve(form, options)
    from optimizer import highs_build

    return highs_build.solve(form, options)
