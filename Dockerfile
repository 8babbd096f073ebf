# One image for every process (api, worker, router, engine, migrate); docker-compose.yml
# picks the command (`callcenter <command>`).
FROM python:3.11-slim-bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends kamailio kamailio-redis-modules kamailio-tls-modules rtpengine-daemon openssl espeak-ng sox opus-tools \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY callcenter callcenter
COPY admin admin
COPY config config
COPY cti cti
COPY ivr ivr
COPY metrics metrics
COPY recordings recordings
COPY ticketing ticketing
COPY migrations migrations
COPY pages pages
RUN pip install --no-cache-dir .
ENV CALLCENTER_STATE_DIR=/var/lib/callcenter
VOLUME ["/var/lib/callcenter"]
ENTRYPOINT ["callcenter"]
