import os

# One BLAS thread per process unless told otherwise: the statistics do many small matrix
# products, and on a few busy cores threaded OpenBLAS made a mixed-model fit 4x slower
# (11.8 s vs 3.1 s at 200,000 ratings). Set before numpy is first imported.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

# Load the Celery app with Django, so @shared_task binds to it (standard Django wiring).
from .celery import app as celery_app

__all__ = ("celery_app",)
