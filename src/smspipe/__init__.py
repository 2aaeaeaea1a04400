"""smspipe: turn e-commerce events into text messages and deliver them through Twilio."""

__version__ = "0.1.0"
