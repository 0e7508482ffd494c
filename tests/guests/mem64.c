// build-flags: --target=wasm64-freestanding -nostdlib -Wl,--no-entry -Wl,--export=run -Wl,--export=heap_pages
// A wasm64 (memory64) guest: pointer-heavy work on a heap it grows itself.
// run(n) builds a binary search tree of n nodes and a chained hash table on
// a bump allocator, merge-sorts a linked list of the same keys, and returns
// a checksum of all three; the native build prints run(n) for each argument.
// Every pointer is 64 bits in the wasm64 build: loads, stores and
// memory.grow take i64 addresses.
#include <stddef.h>
#include <stdint.h>

typedef struct node {
    uint64_t key;
    struct node *left, *right, *next;
} node;

#ifdef __wasm__
#define PAGE 65536
static unsigned char *heap_top, *heap_end;

// Grows the memory (memory.grow with an i64 delta in wasm64) to fit n more bytes.
static void *alloc(size_t n) {
    n = (n + 15) & ~(size_t)15;
    if (heap_top == NULL || (size_t)(heap_end - heap_top) < n) {
        size_t pages = (n + PAGE - 1) / PAGE;
        size_t old = __builtin_wasm_memory_grow(0, pages);
        if (old == (size_t)-1) __builtin_trap();
        if (heap_top == NULL || heap_end != (unsigned char *)(old * PAGE)) heap_top = (unsigned char *)(old * PAGE);
        heap_end = (unsigned char *)((old + pages) * PAGE);
    }
    void *p = heap_top;
    heap_top += n;
    return p;
}

size_t heap_pages(void) { return __builtin_wasm_memory_size(0); }
#else
#include <stdio.h>
#include <stdlib.h>
static void *alloc(size_t n) {
    void *p = calloc(1, n);
    if (p == NULL) abort();
    return p;
}
#endif

static uint64_t lcg(uint64_t *state) {
    *state = *state * 6364136223846793005ull + 1442695040888963407ull;
    return *state >> 11;
}

static node *insert(node *root, node *n) {
    node **at = &root;
    while (*at != NULL) at = n->key < (*at)->key ? &(*at)->left : &(*at)->right;
    *at = n;
    return root;
}

// In-order walk without recursion: a stack of node pointers on the heap.
static uint64_t walk(node *root, size_t count) {
    node **stack = alloc(sizeof *stack * (count + 1));
    size_t depth = 0;
    uint64_t h = 1469598103934665603ull, prev = 0;
    for (node *n = root; n != NULL || depth > 0;) {
        while (n != NULL) {
            stack[depth++] = n;
            n = n->left;
        }
        n = stack[--depth];
        if (n->key < prev) __builtin_trap(); // in order, or the tree is broken
        prev = n->key;
        h = (h ^ n->key) * 1099511628211ull;
        n = n->right;
    }
    return h;
}

static node *merge_sort(node *list) {
    if (list == NULL || list->next == NULL) return list;
    node *slow = list, *fast = list->next;
    while (fast != NULL && fast->next != NULL) slow = slow->next, fast = fast->next->next;
    node *second = slow->next;
    slow->next = NULL;
    node *a = merge_sort(list), *b = merge_sort(second), head = {0}, *tail = &head;
    while (a != NULL && b != NULL) {
        node **take = a->key <= b->key ? &a : &b;
        tail->next = *take;
        tail = *take;
        *take = (*take)->next;
    }
    tail->next = a != NULL ? a : b;
    return head.next;
}

uint64_t run(uint32_t n) {
    uint64_t state = n, sum = 0;
    node *root = NULL, *list = NULL;
    size_t buckets = 1024;
    node **table = alloc(sizeof *table * buckets);
    for (size_t i = 0; i < buckets; i++) table[i] = NULL;
    for (uint32_t i = 0; i < n; i++) {
        node *t = alloc(sizeof *t), *l = alloc(sizeof *l), *c = alloc(sizeof *c);
        t->key = l->key = c->key = lcg(&state) % 1000003u;
        t->left = t->right = t->next = NULL;
        l->left = l->right = NULL;
        l->next = list;
        list = l;
        c->next = table[c->key % buckets];
        table[c->key % buckets] = c;
        root = insert(root, t);
    }
    sum ^= walk(root, n);
    uint64_t h = 0;
    for (node *l = merge_sort(list); l != NULL; l = l->next) h = h * 31 + l->key;
    sum ^= h << 1;
    for (size_t b = 0; b < buckets; b++)
        for (node *c = table[b]; c != NULL; c = c->next) sum += c->key * (b + 1);
    return sum;
}

#ifndef __wasm__
int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) printf("%llu\n", (unsigned long long)run((uint32_t)strtoul(argv[i], NULL, 10)));
    return 0;
}
#endif
