import sys

try:
    from rec.cli import main
except KeyboardInterrupt:  # Ctrl-C while rec starts: one line, no traceback (as rec.cli's)
    sys.stderr.write("error: interrupted; nothing was changed\n")
    sys.exit(130)

if __name__ == "__main__":
    main()
