"""Load generator: realistic visitor journeys sent to a collector or into Kafka, with the
ground truth of what was sent (`clickstream loadgen`, docs/loadgen.md).

Modules: `catalog` (sites, countries, devices, arrivals), `model` (journeys), `send` (pacing,
HTTP and Kafka transports), `truth` (ground-truth files), `cli` (the command). Nothing is
imported here, so that building the `clickstream` parser stays cheap.
"""
