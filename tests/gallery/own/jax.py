raise ImportError("a student's own reference.py: must never shadow the checker's")
