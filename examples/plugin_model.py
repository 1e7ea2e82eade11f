"""A LabelStudioMLBase-style text classifier the worker runs in process (docs/remote.md, "Run your model in process").

In a label-studio-ml server it would read ``class SentimentModel(LabelStudioMLBase):``;
here it needs no label-studio-ml import.  Its label config:
``<Text name="text" value="$text"/><Choices name="sentiment" toName="text">...</Choices>``.
"""

from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline


class SentimentModel:
    from_name, to_name = "sentiment", "text"

    def __init__(self, project_id=None, label_config=None, **kwargs):
        self.pipeline = None
        self.model_version = "sentiment-0"

    def predict(self, tasks, context=None, **kwargs):
        if self.pipeline is None:  # nothing learnt yet: no pre-annotation, no opinion on the order
            return [{"result": []} for _ in tasks]
        texts = [str(task["data"].get(self.to_name, "")) for task in tasks]
        predictions = []
        for proba in self.pipeline.predict_proba(texts):
            best = int(proba.argmax())
            item = {"from_name": self.from_name, "to_name": self.to_name, "type": "choices",
                    "value": {"choices": [str(self.pipeline.classes_[best])]}, "score": float(proba[best])}
            predictions.append({"result": [item], "score": float(proba[best]), "model_version": self.model_version})
        return predictions

    def fit(self, event, data, **kwargs):
        texts, labels = [], []
        for task in data.get("tasks", []):
            for annotation in task.get("annotations", []):
                for item in annotation.get("result", []):
                    if item.get("from_name") == self.from_name and item.get("value", {}).get("choices"):
                        texts.append(str(task["data"].get(self.to_name, "")))
                        labels.append(item["value"]["choices"][0])
        if len(set(labels)) < 2:  # a classifier needs two labels
            return
        self.pipeline = make_pipeline(TfidfVectorizer(ngram_range=(1, 2)), LogisticRegression(max_iter=1000))
        self.pipeline.fit(texts, labels)
        self.model_version = f"sentiment-{len(texts)}"
