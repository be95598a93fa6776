# An Eventual node in a container (docs/deploy.md). Build: docker build -t eventual .
# Run: docker run -e EVENTUAL_NODE_ID=n1 -e EVENTUAL_NODE_MEMBERS="n1=r1@host1:9001 ..." \
#   -e EVENTUAL_CLUSTER_SECRET=... -v eventual-n1:/data -p 6379:6379 -p 8001:8001 -p 9001:9001 eventual
# The build stage compiles the data path (mypyc needs gcc; the image has Python's headers).
FROM python:3.11-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends gcc \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md hatch_build.py ./
COPY src ./src
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /data eventual \
    && mkdir /data && chown eventual:eventual /data
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels eventual && rm -rf /wheels
USER eventual
VOLUME /data
# Redis protocol, HTTP (console at /ui), internode.
EXPOSE 6379 8001 9001
# The internode port listens on every interface; the others dial the member address
# (EVENTUAL_NODE_MEMBERS), the host's.
ENV EVENTUAL_NODE_DATA_DIR=/data \
    EVENTUAL_NODE_RESP=0.0.0.0:6379 \
    EVENTUAL_NODE_HTTP=0.0.0.0:8001 \
    EVENTUAL_NODE_LISTEN=0.0.0.0:9001 \
    EVENTUAL_NODE_LOG_FORMAT=json
# SIGTERM (docker stop) stops the node cleanly.
STOPSIGNAL SIGTERM
ENTRYPOINT ["eventual", "node"]
