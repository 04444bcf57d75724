"""Kafka clients behind one interface: `confluent` (librdkafka) and `kafka-python`, chosen by
`kafka.client`. Import-light: each client's package is imported only when it is used."""
