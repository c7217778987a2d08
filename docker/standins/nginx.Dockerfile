# Stand-in for the official nginx image where no registry can be reached:
# Debian's nginx, configured by a file mounted at /etc/nginx/nginx.conf.
FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends nginx-light \
    && rm -rf /var/lib/apt/lists/* \
    && ln -sf /dev/stderr /var/log/nginx/error.log && ln -sf /dev/stdout /var/log/nginx/access.log
STOPSIGNAL SIGQUIT
CMD ["nginx", "-g", "daemon off;"]
