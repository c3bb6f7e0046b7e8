"""Provenance tracing of a distilled model's sentences ("Where Did This Sentence Come From?",
arXiv 2512.20908): each sentence a model wrote is scored under the teacher T, the original
student S and the distilled model D given the same context (p = exp(mean token log-prob)), and
put in one category by comparing the three. `split` cuts traces into sentences with their part,
`score` computes p under a local model or an endpoint, `categorize` assigns the categories."""
