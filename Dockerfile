# roomserver: the README's install-and-run command, in an image.
FROM python:3.11-slim

WORKDIR /app
COPY pyproject.toml README.md ./
COPY roomserver ./roomserver
COPY migrations ./migrations
RUN pip install --no-cache-dir .

# SQLite by default, in a volume; docker-compose.yml switches to PostgreSQL.
ENV ROOMSERVER_DATABASE_URL=sqlite:////data/roomserver.db \
    ROOMSERVER_SERVER_NAME=localhost
VOLUME /data
EXPOSE 7770
CMD ["roomserver", "serve", "--host", "0.0.0.0", "--port", "7770"]
