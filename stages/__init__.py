"""The pipeline's stages, one module each, run as ``python -m stages.NAME`` by dvc.yaml.

Run that way, the interpreter first restarts itself with glibc's huge-page malloc
(wm_core/hugepages.py: XLA:CPU's fresh buffers otherwise cost ~a quarter of V's and M's training
time in page faults). It happens here, while ``-m`` is still locating the module
(``sys.argv[0] == "-m"``), so before the stage's own imports; importing a stage from Python
(the tests) changes nothing. It changes where memory comes from, never a result, so no
stage in dvc.yaml lists it as a dependency.

The restarted process then points JAX at the on-disk compilation cache (wm_core/jaxcache.py), so
that the nine evolve stages of a rounds run compile the dream once, not nine times; also a matter
of time, never of results.
"""

import sys

from wm_core.hugepages import reexec_with_huge_pages
from wm_core.jaxcache import use_compilation_cache

if sys.argv[:1] == ["-m"]:
    reexec_with_huge_pages()
    use_compilation_cache()
