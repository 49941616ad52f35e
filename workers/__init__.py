"""workers: the avroflow stream worker (Faust) and its command line.

Settings (`settings`), pipeline declarations (`pipeline`), the Faust app (`app`), the sample pipeline
(`sample`) and the command line (`cli`, run as ``python -m workers`` or ``avroflow``). Nothing is imported
here, so the command line starts without importing faust.
"""
