"""Foundations every part relies on: database, errors, ids, clock, paging, durable events and jobs."""
