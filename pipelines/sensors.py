"""Sensors: the SLA clock (every minute)."""

all_sensors: list = []
