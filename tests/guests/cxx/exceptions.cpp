// C++ exceptions across frames, built for WASI with Wasm exception handling
// (clang -fwasm-exceptions) and natively (g++): both builds must print the
// same lines. Exercises what C++ compilers lower to try/catch/rethrow (or
// try_table/throw_ref): throws through deep recursion, destructors run while
// unwinding, catch by base class, rethrow with `throw;`, catch (...), nested
// handlers inside handlers, a throwing constructor, and many throws in a loop.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

struct AppError : std::runtime_error {
    int code;
    AppError(const std::string &what, int code) : std::runtime_error(what), code(code) {}
};
struct NotFound : AppError {
    explicit NotFound(const std::string &key) : AppError("not found: " + key, 404) {}
};

static int live_guards = 0;

struct Guard {  // prints when unwinding destroys it
    const char *name;
    explicit Guard(const char *name) : name(name) { live_guards++; }
    ~Guard() {
        live_guards--;
        std::printf("  ~Guard(%s)\n", name);
    }
};

static int descend(int depth, int limit) {
    if (depth == limit) throw NotFound("key" + std::to_string(limit));
    return descend(depth + 1, limit) + 1;  // not a tail call: every frame stays
}

static void with_guards(int n) {
    Guard a("outer");
    {
        Guard b("inner");
        if (n > 0) throw AppError("guarded failure", n);
    }
    std::printf("  no throw\n");
}

static int rethrower(int n) {
    try {
        return descend(0, n);
    } catch (const AppError &e) {
        std::printf("  rethrower saw code %d, rethrowing\n", e.code);
        throw;  // the same exception object continues outward
    }
}

struct Resource {
    std::string name;
    Guard guard;
    explicit Resource(const char *n, bool fail) : name(n), guard(n) {
        if (fail) throw std::invalid_argument(std::string("cannot open ") + n);
    }
};

static const char *classify(int k) {
    try {
        switch (k) {
        case 0: throw 42;
        case 1: throw "a C string";
        case 2: throw std::out_of_range("index 7");
        case 3: throw NotFound("x");
        case 4: throw 2.5;
        default: return "nothing thrown";
        }
    } catch (int v) {
        return v == 42 ? "int 42" : "other int";
    } catch (const char *s) {
        return std::strcmp(s, "a C string") == 0 ? "const char*" : "other string";
    } catch (const NotFound &e) {
        return e.code == 404 ? "NotFound" : "bad NotFound";
    } catch (const std::exception &e) {
        return std::strcmp(e.what(), "index 7") == 0 ? "std::exception out_of_range" : "other exception";
    } catch (...) {
        return "something else";
    }
}

static int nested_handlers(int n) {
    int result = 0;
    try {
        throw AppError("first", 1);
    } catch (const AppError &first) {
        result += first.code;
        try {
            if (n) throw AppError("second", 10);
        } catch (const AppError &second) {
            result += second.code;
        }
        try {
            throw;  // rethrow the first while a handler for it is active
        } catch (const AppError &again) {
            result += 100 * again.code;
        }
    }
    return result;
}

static unsigned loop(int rounds) {
    unsigned sum = 0;
    for (int i = 0; i < rounds; i++) {
        try {
            if (i % 3 == 0) throw AppError("loop", i);
            if (i % 3 == 1) throw i;
            sum += 7;
        } catch (const AppError &e) {
            sum = sum * 31 + (unsigned)e.code;
        } catch (int v) {
            sum ^= (unsigned)v;
        }
    }
    return sum;
}

int main() {
    std::printf("deep:\n");
    for (int limit : {1, 10, 1000}) {
        try {
            descend(0, limit);
        } catch (const AppError &e) {  // a NotFound, caught by its base
            std::printf("  caught %s (code %d) from depth %d\n", e.what(), e.code, limit);
        }
    }

    std::printf("guards:\n");
    for (int n : {0, 3}) {
        try {
            with_guards(n);
        } catch (const AppError &e) {
            std::printf("  caught %s %d, live guards %d\n", e.what(), e.code, live_guards);
        }
    }

    std::printf("rethrow:\n");
    try {
        rethrower(5);
    } catch (const NotFound &e) {
        std::printf("  outer caught %s\n", e.what());
    }

    std::printf("constructor:\n");
    try {
        Resource ok("a.txt", false);
        Resource bad("b.txt", true);
        std::printf("  unreachable\n");
    } catch (const std::invalid_argument &e) {
        std::printf("  %s, live guards %d\n", e.what(), live_guards);
    }

    std::printf("classify:\n");
    for (int k = 0; k < 6; k++) std::printf("  %d: %s\n", k, classify(k));

    std::printf("nested: %d %d\n", nested_handlers(0), nested_handlers(1));
    std::printf("loop: %u\n", loop(30000));

    try {
        throw NotFound("the end");
    } catch (...) {
        std::printf("catch-all done\n");
    }
    return 0;
}
