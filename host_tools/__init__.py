"""Host-side tools: units, the drug library, prescription and scenario files, and pumpctl."""
