"""flit-demo: built from source by envbuild's tests."""


def main():
    print("flit-demo says hello")
