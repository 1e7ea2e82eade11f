"""Label Studio's formats and API: label configs, task data, payload schemas, the API client."""
