"""The Flurrty Twin library shared by the three Lambda functions."""
