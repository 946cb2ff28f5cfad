"""Teaching: the pooled_output-vs-[CLS] trace and its pictures."""
