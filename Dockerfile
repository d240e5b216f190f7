# tokencoach: one image for `serve` (chat endpoints + optional scheduler) and `worker`.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bot bot
COPY handlers handlers
COPY jobs jobs
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 tokencoach
WORKDIR /app
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
COPY app.yaml ./
COPY slack ./slack
COPY teams ./teams
USER tokencoach
ENV TOKENCOACH_CONFIG=/app/app.yaml \
    PYTHONUNBUFFERED=1
EXPOSE 3978
HEALTHCHECK --interval=30s --timeout=5s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:3978/healthz', timeout=4).status == 200 else 1)"
# Migrations are idempotent and lock-protected, so every replica may run them on start.
CMD ["sh", "-c", "tokencoach db upgrade && exec tokencoach serve --host 0.0.0.0 --port 3978"]
