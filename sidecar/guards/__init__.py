"""Guardrails in the sidecar: input checks, PII, schema-checked outputs with fallbacks, semantic checks,
confidence and stream filters, run as one pipeline stage (`sidecar.guards.stage.GuardStage`)."""
