"""Pure audio processing: decode, validate, resample, channels, normalize, chunk,
overlap-add, encode. numpy / soundfile / soxr only: no grpc, no tritonclient."""
