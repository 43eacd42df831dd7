"""kafkalake: Kafka -> Avro -> Spark -> a clean lake, orchestrated by Airflow 3.

Importing the package is cheap on purpose: DAG files import from it at parse time, so heavy
libraries (pyspark, confluent_kafka, fastavro) are imported inside the functions that use them.
"""

__version__ = "0.1.0"
