"""The Flurrty Twin library shared by the three Lambda functions."""

import os

# We use no pydantic plugins: without this, the first model built scans the entry points of every
# installed distribution (the whole layer and the runtime's boto3) at each cold start.
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
