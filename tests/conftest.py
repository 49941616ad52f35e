"""Shared test configuration: the local broker and registry fixtures come from devstack's pytest plugin."""

pytest_plugins = ["devstack.pytest_plugin"]
