# error: {path}:5: syntax error: invalid syntax
#|   x = (ü +)
#|           ^
if True:
    x = (ü +)
