"""The gRPC front end and the inference backends it calls."""
