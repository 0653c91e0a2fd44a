# An SMTP sink standing in for Mailpit in CI (compose.ci.yaml): Mailpit's image lives on Docker Hub, this
# one builds from the same python base as digest. Every accepted message is kept as a file in the Maildir
# /srv/sink (new/), with the envelope in X-MailFrom / X-RcptTo headers, so a test can count and read them.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN pip install "aiosmtpd==1.4.6" \
    && useradd --uid 10002 sink \
    && mkdir -p /srv/sink/tmp /srv/sink/new /srv/sink/cur \
    && chown -R sink:sink /srv/sink
USER sink
EXPOSE 1025
# Python as PID 1 ignores SIGTERM (no handler); aiosmtpd stops cleanly on SIGINT
STOPSIGNAL SIGINT
CMD ["python", "-m", "aiosmtpd", "--nosetuid", "--listen", "0.0.0.0:1025", "-c", "aiosmtpd.handlers.Mailbox", "/srv/sink"]
