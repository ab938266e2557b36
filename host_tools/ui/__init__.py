"""`pumpctl ui`: the clinician's page for one pump (docs/ui.md, docs/security.md)."""
