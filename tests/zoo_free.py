"""The first lines of a script that must run without zoo: an export or converted file has to
stand alone, so the subprocesses that load one make `import zoo` fail first."""

WITHOUT_ZOO = '''
import sys
sys.modules["zoo"] = None
try:
    import zoo
except ImportError:
    pass
else:
    raise SystemExit("zoo is importable; the test would prove nothing")
'''
