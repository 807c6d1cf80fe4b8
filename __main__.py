"""ha-celery: one stack of the highly-available Celery platform (see README.md)."""

from stacks import config, platform

platform.build(config.load())
