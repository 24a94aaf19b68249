"""`recsys monitor`: notice when the data, the model's quality or its freshness
has moved away from what the production model was trained on."""
