# gyre-agent image. Build from the repository root:
#   docker build -f deploy/docker/agent.Dockerfile -t gyre/agent:0.1.0 .
# Stage 1 compiles the binary against Debian 12's packages (as scripts/build
# does); stage 2 is Debian 12 slim with only the binary and the shared
# libraries ldd says it loads, run as an unprivileged user. The libraries go
# to /usr/lib/x86_64-linux-gnu under their soname: /lib is a symlink to /usr/lib
# in Debian 12, which a copied /lib directory would clash with.
FROM debian:12.8 AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      build-essential cmake ninja-build pkg-config \
      libgrpc++-dev libgrpc-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler grpc-proto \
      libabsl-dev libpqxx-dev libpq-dev prometheus-cpp-dev libyaml-cpp-dev \
      libboost1.81-dev libboost-url1.81-dev libboost-json1.81-dev libssl-dev libargon2-dev \
      libgtest-dev libgmock-dev libbenchmark-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release -DGYRE_WERROR=OFF \
 && ninja -C /build gyre-agent \
 && install -D -m 0755 /build/services/agent/gyre-agent /rootfs/usr/local/bin/gyre-agent \
 && mkdir -p /rootfs/usr/lib/x86_64-linux-gnu \
 && ldd /rootfs/usr/local/bin/gyre-agent | awk '/=> \// { print $3 }' \
      | xargs -I{} cp -L {} /rootfs/usr/lib/x86_64-linux-gnu/

FROM debian:12.8-slim
COPY --from=build /rootfs/ /
RUN groupadd --system --gid 10001 gyre \
 && useradd --system --uid 10001 --gid gyre --home-dir /nonexistent --shell /usr/sbin/nologin gyre \
 && install -d -o 10001 -g 10001 /tmp/gyre-agent
USER 10001:10001
EXPOSE 50052 9102
ENTRYPOINT ["/usr/local/bin/gyre-agent"]
