# The capstan agent's image: scratch-like, non-root, one binary.
#
# Build it with scripts/image (buildah, no Docker daemon, nothing pulled): the build
# context is a root file system the script stages in rootfs/: the stripped `capstan`
# binary (cargo profile `dist`), the shared libraries it links, CA certificates and a
# passwd entry for the non-root user 65532.
FROM scratch
COPY rootfs/ /
USER 65532:65532
WORKDIR /tmp
ENV HOME=/tmp
ENTRYPOINT ["/usr/local/bin/capstan", "agent"]
