# An AgentOS node (`aos up`), for docker-compose.yml's cluster profile.
# bubblewrap sandboxes the agents' commands (the compose file relaxes the
# container's seccomp and AppArmor profiles so that it can make namespaces).
FROM python:3.11-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends bubblewrap passt \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY sdk/python ./sdk/python
COPY pyproject.toml README.md ./
COPY aos ./aos
COPY aos_stdskills ./aos_stdskills
RUN pip install --no-cache-dir ./sdk/python .
WORKDIR /project
ENV AOS_HOME=/var/lib/aos
CMD ["aos", "up"]
