/* core/placement.h - where a model's tensors live (core-internal).
 *
 * Backends whose device_info says host_memory = 0 (cuda, hip, the test
 * backend fakedev) compute in their own memory.  Placement decides, at load:
 *   - the device map: an explicit mapping, or a strategy (auto, balanced,
 *     balanced_low_0, sequential) that assigns whole modules (embeddings,
 *     decoder layers, final norm, lm_head) to the device backends in order,
 *     under max_memory, then to the cpu, then to "disk" (weights left in the
 *     memory map and streamed to the device that runs them before each use),
 *     as accelerate's infer_auto_device_map;
 *   - which weights are uploaded to a device (once: those its nodes read).
 * Per step, graph.c inserts the copies between memories and plans one
 * activation arena per device.  See docs/devices.md.
 *
 * Thread-safety: called while a model is loaded or destroyed (one thread).
 */
#ifndef TESSERA_CORE_PLACEMENT_H
#define TESSERA_CORE_PLACEMENT_H

#include "model.h"

/* After the backends are loaded: ask each for its device 0 (memory kind,
 * size) and name it as transformers would ("cpu", "cuda:0"). */
tsr_status tsr__place_backends(tsr_model *m);

/* The loaded backend that runs modules mapped to `dev`: a backend's own name
 * ("onednn"), a device kind with or without index ("cpu", "cuda:0"), an
 * accelerate-style GPU number ("0": the first device backend), or "disk"
 * (the first backend of the list, accelerate's main device).  -1 if none. */
int tsr__place_device_backend(const tsr_model *m, const char *dev);

/* Build m->env.dmap from a strategy name; no map when no backend has
 * device memory (the backends list decides, as before). */
tsr_status tsr__place_strategy(tsr_model *m, const char *strategy);

/* Mark "disk" weights and upload, once, every other weight that a device
 * backend's node reads (learned from a one-token dry-run graph). */
tsr_status tsr__place_weights(tsr_model *m);

/* Free device copies, device arenas and the KV cache (before the backends
 * that own their memory are destroyed). */
void tsr__place_release(tsr_model *m);

/* The device a module prefix or weight name is mapped to, as hf_device_map
 * shows it ("cpu", "cuda:0", "disk", or a host backend's own name). */
const char *tsr__place_device_of(const tsr_model *m, const char *name);

/* The strategy itself, without a model (unit-tested): modules in order with
 * their sizes; devices in order with budgets (UINT64_MAX: no limit) and a
 * reserve kept free on each (activations, KV of streamed layers); the last
 * device takes whatever is left.  A module of size 0 (a tied lm_head) goes
 * with module 0.  balanced: the device-backend budgets are evened out over
 * the first n_gpu devices (low_0: device 0 keeps only its reserve), as
 * accelerate's get_balanced_memory.  out[i] = device index of module i. */
typedef enum tsr__place_mode {
    TSR__PLACE_SEQUENTIAL,
    TSR__PLACE_BALANCED,
    TSR__PLACE_BALANCED_LOW_0
} tsr__place_mode;
void tsr__place_assign(tsr__place_mode mode, const uint64_t *sizes, size_t n_mod,
                       const uint64_t *budget, const uint64_t *reserve, size_t n_dev,
                       size_t n_gpu, int *out);

#endif
