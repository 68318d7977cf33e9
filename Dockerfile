# Minimal image for now; the shipping step makes it multi-stage and hardened.
FROM python:3.11-slim
RUN useradd --uid 10001 --create-home authbridge
WORKDIR /app
COPY pyproject.toml README.md ./
COPY authbridge ./authbridge
RUN pip install --no-cache-dir . && rm -rf /root/.cache
USER 10001
WORKDIR /home/authbridge
ENTRYPOINT ["authbridge"]
CMD ["serve"]
