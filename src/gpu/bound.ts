/**
 * Bound GPU work and the tensors it owns: the one shape every kernel launcher, loss and graph returns
 * (`dispatches` to record, `owned` tensors to free), and the arena that allocates and tracks them.
 *
 * @module
 */
import type { Gpu } from "./device.ts";
import type { Dispatch } from "./kernel.ts";
import { type DType, Tensor } from "./tensor.ts";

/** Something that allocated tensors for itself and hands them over for freeing (see {@link TensorArena}). */
export interface OwnsTensors {
  /** Tensors it allocated and nobody else frees (inputs and outputs passed in are not among them). */
  owned: Tensor[];
}

/**
 * Recorded work bound to its buffers: the dispatches to record, in order, and the tensors the work
 * allocated for itself (scratch, partial sums, saved statistics, tables). Whoever holds a `Bound` frees
 * `owned` when the dispatches will not run again (or hands them to a {@link TensorArena} with `adopt`).
 */
export interface Bound extends OwnsTensors {
  /** Dispatches to record, in order. */
  dispatches: Dispatch[];
}

/**
 * Allocates tensors and remembers them, so that a builder (a graph, a loss, a step) frees everything it
 * made with one `dispose()`. `adopt` takes over the tensors a {@link Bound} (or any {@link OwnsTensors}) owns.
 */
export class TensorArena {
  /** Every tensor allocated or adopted so far, in order. */
  readonly owned: Tensor[] = [];

  /** An arena allocating on `gpu`. */
  constructor(readonly gpu: Gpu) {}

  /** Allocates an uninitialised tensor (see {@link Tensor.empty}) and tracks it. */
  alloc(shape: readonly number[], name: string, dtype: DType = "f32"): Tensor {
    return this.track(Tensor.empty(this.gpu, shape, dtype, name));
  }

  /** Tracks a tensor made elsewhere (e.g. with {@link Tensor.from}); returns it. */
  track(t: Tensor): Tensor {
    this.owned.push(t);
    return t;
  }

  /** Takes over the tensors `bound` owns; returns `bound` (for its dispatches and other fields). */
  adopt<B extends OwnsTensors>(bound: B): B {
    this.owned.push(...bound.owned);
    return bound;
  }

  /** Frees every tracked tensor and forgets them. */
  dispose(): void {
    for (const t of this.owned.splice(0)) t.dispose();
  }
}
