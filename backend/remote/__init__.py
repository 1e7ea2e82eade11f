"""Bring your own model: order the queue by another Label Studio ML backend's predictions.

``client.py`` calls that backend's ``/predict`` as Label Studio would;
``uncertainty.py`` reads one uncertainty per task out of its answers.
"""
