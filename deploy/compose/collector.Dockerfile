# The dcguard collector image, built from this checkout (context: the repo root).
FROM python:3.12-slim
RUN useradd --system --user-group --home-dir /var/lib/dcguard-collector dcguard-collector \
 && mkdir -p /var/lib/dcguard-collector && chown dcguard-collector: /var/lib/dcguard-collector
COPY . /src
RUN pip install --no-cache-dir /src && rm -rf /src
USER dcguard-collector
EXPOSE 4740 9740
ENTRYPOINT ["dcguard-collector"]
CMD ["serve", "--config", "/etc/dcguard/collector.toml"]
