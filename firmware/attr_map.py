"""Room in an instance's attribute map, for fast lookups.

MicroPython keeps an instance's attributes in a hash map (py/map.c). An
insert that finds the map full grows it (mp_map_rehash) to the next size of
hash_allocation_sizes (get_hash_alloc_greater_or_equal_to), and only then:
n attributes set one by one sit in the first size >= n. A lookup that misses
-- every method call, which looks in the instance first -- probes from its
hash's slot to an empty one, which in a full map is far. Objects read all the
time (the heater controller, the simulator's kernel and models) get a map one
size up. tests/bench/test_attr_map.py checks these sizes on the interpreter.
"""

# py/map.c's hash_allocation_sizes, from the first that is not 0, up to what
# an object here needs
MAP_SIZES = (2, 4, 6, 8, 10, 12, 17, 23, 29, 37, 47, 59, 73, 97, 127)


def map_size(n):
    """Slots of the map that n (1..127) attributes, set one by one, end up in."""
    for size in MAP_SIZES:
        if size >= n:
            return size
    raise ValueError("past attr_map.MAP_SIZES")


def make_room(obj):
    """Grow obj's attribute map one size: placeholders fill it, then go.
    Call it once obj has all its attributes."""
    try:
        n = len(obj.__dict__)
    except AttributeError:  # a port without __dict__: leave it
        return
    if n > MAP_SIZES[-1]:  # past the table: leave it
        return
    names = ["_room%d" % k for k in range(map_size(n) + 1 - n)]
    for name in names:
        setattr(obj, name, None)
    for name in names:
        delattr(obj, name)
