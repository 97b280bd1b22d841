/**
 * One PLRC training step, top to bottom, as one GPU submission with no wait inside:
 *
 *   upload the batch (views A0, A1, B0; points; matched pairs)
 *   online encoder forward on A0            (backbone + heads, activations kept)
 *   momentum encoder forward on A1 and B0   (no backward)
 *   losses forward: image InfoNCE against the queue, point-level region contrast, affinity distillation
 *   losses backward → weighted gradients of the online heads' outputs
 *   online heads + backbone backward        (gradients into the flat gradient buffer)
 *   SGD on the online parameters, EMA into the momentum encoder
 *   queue write, distillation-centre update, loss scalars copied into the metrics ring
 *
 * Everything is bound once in {@link PlrcStep.build}; a step only uploads data, updates a few uniforms
 * (learning rate, EMA momentum, teacher temperature, queue pointer) and records the same dispatches.
 *
 * Gradient accumulation (`accumulate` = m > 1) runs the batch as m micro-batches of B/m images, as m GPUs
 * of a data-parallel run would, one submission per pass and no wait: first m momentum-encoder passes over
 * the whole batch (in the shuffle-BN order, so its BN groups mix images across micro-batches as the
 * release's cross-GPU shuffle did), then m online passes. Every loss sees only its micro-batch (point
 * negatives, distillation pairs; the paper's per-GPU batches), all of them see the same queue and
 * distillation centre, and the mean of their gradients makes one SGD step. Their keys are enqueued together
 * after the last, and the centre moves once, by the mean of the micro-batches' teacher means.
 *
 * Data parallelism (`ranks`, {@link StepRanks}: R processes, one device each) runs the same step with its M
 * micro-batches dealt out over the ranks: rank r runs micro-batches r·M/R … (r+1)·M/R − 1 of the global batch
 * and the results meet where the single process would add them. With shuffle-BN the ranks all-gather the key
 * views (the permutation is drawn from the seed and the step, identical everywhere), each runs its slots'
 * key passes, and the key outputs are all-gathered before they are put back in image order. After the online
 * passes one readback brings the partial sums (gradients, loss values, centre moves ÷ M) and this rank's
 * keys to the host; they are all-reduced and all-gathered, uploaded, and every rank runs the same update.
 * BN running statistics stay per rank.
 *
 * @module
 */
import { type OwnsTensors, TensorArena } from "../gpu/bound.ts";
import type { Gpu } from "../gpu/device.ts";
import { type Profiler, Recorder } from "../gpu/recorder.ts";
import type { Dispatch } from "../gpu/kernel.ts";
import { bytesInUse, Tensor } from "../gpu/tensor.ts";
import { Readback } from "../gpu/readback.ts";
import { routeBlocks, type ShuffleRoutes, shuffleRoutes, type StepRanks, SumExchange } from "./exchange.ts";

export type { StepRanks };
import { type PlrcBatch, splitBatch } from "../data/batch.ts";
import { axpy, scale } from "../kernels/elementwise.ts";
import { gatherBlocks, invertPermutation } from "../kernels/gather.ts";
import { Rng } from "../util/rng.ts";
import { emaUpdate, larsStep, sgdStep } from "../kernels/optim.ts";
import { buildDistillation, type Distillation } from "../losses/distill.ts";
import { buildImageContrast, type ImageContrast } from "../losses/image_contrast.ts";
import { buildPointContrast, type PointContrast, pointInputsFromBatch } from "../losses/point_contrast.ts";
import { buildEncoder, createEncoderStore, type EncoderConfig, type EncoderGraph } from "../models/encoder.ts";
import type { ParamStore } from "../nn/params.ts";
import { MetricsRing, type StepScalars } from "./metrics_ring.ts";
import type { Method } from "./config/schema.ts";

export type { Method };

/** Everything the step needs to bind its kernels. */
export interface StepConfig {
  /** Pre-training method. */
  method: Method;
  /** Backbone and head sizes. */
  encoder: EncoderConfig;
  /** Images per step. */
  batch: number;
  /** View side R. */
  resolution: number;
  /** Images per ghost-BN group (the batch must be a multiple, or smaller: then one group). */
  bnGroupSize: number;
  /**
   * Shuffle-BN emulation: the key encoder sees each of its views in a random image order (so its BN
   * groups mix images differently from the query's), and its outputs are put back in order.
   */
  shuffleBn?: boolean;
  /** Region slots per image. */
  regions: number;
  /** Points per region slot. */
  points: number;
  /** Loss weights. */
  weights: { image: number; point: number; distill: number };
  /** Loss temperatures (the teacher's is the starting value; the schedule changes it). */
  temperatures: { image: number; point: number; pointBase: number; student: number; teacher: number };
  /** Rows of the image-level queue of keys. */
  queueSize: number;
  /** Affinity scale α of the distillation. */
  affinityScale: number;
  /** Centre momentum of the distillation. */
  centerMomentum: number;
  /** Upper bound of matched pairs per image (the pair list is truncated beyond it). */
  maxPairsPerImage: number;
  /** SGD; with `lars`, the per-tensor LARS trust ratio (coefficient `larsTrust`) on weights. */
  optim: { lr: number; momentum: number; weightDecay: number; nesterov: boolean; lars?: boolean; larsTrust?: number };
  /** EMA momentum of the key encoder (the starting value; the schedule changes it). */
  ema: number;
  /** Seed of the encoders' initial weights, the queue and the per-step shuffles. */
  seed: number;
  /** Micro-batches per step (gradient accumulation); divides `batch`. Default 1. */
  accumulate?: number;
  /**
   * The momentum encoder's two views write their backbone activations into the online backbone's buffers
   * (default true: the key passes run before the online pass, when those buffers hold nothing live); false
   * gives each its own (the same results, more memory).
   */
  shareKeyActivations?: boolean;
}

/** Per-step values that change with the schedules. */
export interface StepSchedule {
  /** Learning rate. */
  lr: number;
  /** EMA momentum. */
  ema: number;
  /** Teacher temperature of the distillation. */
  teacherTemperature: number;
}

/** Where a data-parallel step's wall time went, summed since the step was built (milliseconds). */
export interface StepCommTimes {
  /** Steps measured. */
  steps: number;
  /** From the submission before an exchange until its readback arrived (GPU work, then the copy to the host). */
  gpuAndReadback: number;
  /** In the collectives (all-reduce, all-gather), including the wait for the slowest rank. */
  communication: number;
  /** Bytes this rank sent into collectives. */
  bytes: number;
}

/**
 * Names of the scalars read back per step, in ring order: the three losses, then the distillation's
 * collapse readings (bottleneck alignment, teacher entropy in nats; 0 without distillation).
 */
export const STEP_SCALARS = [
  "loss_image",
  "loss_point",
  "loss_distill",
  "distill_alignment",
  "distill_entropy",
] as const;

/** The losses of a bound step (point contrast and distillation only for the methods that use them). */
export interface StepLosses {
  /** Image-level contrast (every method). */
  image: ImageContrast;
  /** Point or region contrast (all but MoCo). */
  point: PointContrast | null;
  /** Point-affinity distillation (PLRC only). */
  distill: Distillation | null;
}

/** Everything {@link PlrcStep.build} binds, handed to the step in one piece. */
interface StepParts extends OwnsTensors {
  gpu: Gpu;
  cfg: StepConfig;
  online: ParamStore;
  momentum: ParamStore;
  /** The online encoder (view A0) and the momentum encoder's two passes (views A1 and B0). */
  q: EncoderGraph;
  kA1: EncoderGraph;
  kB0: EncoderGraph;
  losses: StepLosses;
  /** The weighted combination of the loss gradients into the online heads' output gradients. */
  gradDispatches: Dispatch[];
  /** The optimizer's dispatches; `sgd` (the last) takes the learning rate. */
  optimDispatches: Dispatch[];
  sgd: Dispatch;
  emaDispatch: Dispatch;
  ring: MetricsRing;
  lossTensors: Tensor[];
  /** Gathers of the key encoder's shuffled outputs back into image order (empty without shuffle-BN). */
  unshuffle: Dispatch[];
  /** Shuffle-BN: the image order of each key view (empty without). */
  shuffleOrder: Tensor[];
  accumulation: Accumulation | null;
  keySlices: KeySlice[];
  ranks: StepRanks | null;
  bufferBytes: Record<StepBufferPart, number>;
}

/**
 * The parts of a step's GPU buffers: `parameters` (both encoders' weights, the online gradients, momentum
 * buffers and weight-decay masks, BN statistics), `online encoder` (activations kept for the backward and
 * their gradients), `momentum encoder` (its two views, forward only), `losses` (the losses' buffers, the key
 * encoder's outputs as the losses read them, shuffle orders), `optimizer` (what the update adds),
 * `accumulation` (micro-batch sums), `metrics ring` (loss read-back slots).
 */
export type StepBufferPart =
  | "parameters"
  | "online encoder"
  | "momentum encoder"
  | "losses"
  | "optimizer"
  | "accumulation"
  | "metrics ring";

/** The bound step. */
export class PlrcStep {
  /** Dispatches of one step without accumulation, in recording order (for profiling by family). */
  readonly dispatches: Dispatch[];
  /** One pass over the bound images (the whole batch, or one micro-batch): forwards, losses, backward. */
  readonly pass: Dispatch[];
  /** Accumulation: one momentum-encoder pass, and the gathers of its whole-batch outputs into image order. */
  readonly keyPass: Dispatch[];
  /** Accumulation: the gathers that put the key encoder's shuffled outputs back in image order. */
  readonly unshuffle: Dispatch[];
  /** Once per step after the passes: optimizer, EMA, queue write (and the centre without accumulation). */
  readonly update: Dispatch[];
  /** The weighted combination of the loss gradients into the online heads' output gradients. */
  readonly gradDispatches: Dispatch[];
  /** The device the step is bound on. */
  readonly gpu: Gpu;
  /** The configuration the step was bound for. */
  readonly cfg: StepConfig;
  /** The online encoder's parameters (trained). */
  readonly online: ParamStore;
  /** The momentum encoder's parameters (an EMA of the online ones). */
  readonly momentum: ParamStore;
  /** The online encoder's graph (view A0). */
  readonly q: EncoderGraph;
  /**
   * The momentum encoder's graph over view A1. Its backbone writes into `q`'s backbone buffers (unless
   * `shareKeyActivations` is false): run it before `q`'s forward, as the step does.
   */
  readonly kA1: EncoderGraph;
  /** The momentum encoder's graph over view B0 (the same buffers as `kA1`'s backbone; run it after `kA1`). */
  readonly kB0: EncoderGraph;
  /** The bound losses. */
  readonly losses: StepLosses;
  /** The optimizer's dispatch that takes the learning rate. */
  readonly sgd: Dispatch;
  /** The EMA update of the momentum encoder (takes the momentum). */
  readonly emaDispatch: Dispatch;
  /** The ring the loss scalars are read back through. */
  readonly ring: MetricsRing;
  /** The loss scalars of one pass, in {@link STEP_SCALARS} order. */
  readonly lossTensors: Tensor[];
  /** Tensors the step allocated besides its graphs' and losses' (freed by `dispose`). */
  readonly owned: Tensor[];
  readonly #keySlices: KeySlice[];
  #queuePtr = 0;
  readonly #shuffleOrder: Tensor[];
  /**
   * Accumulation only: this process's micro-batches of the uploaded batch and its key views (in the key
   * encoder's order), whose first part is micro-batch `keyFirst` of the global batch.
   */
  #micro: { batches: PlrcBatch[]; keyViews: [Float32Array, Float32Array]; keyFirst: number; stepIndex: number } | null =
    null;
  readonly #accumulation: Accumulation | null;
  readonly #ranks: StepRanks | null;
  /** Data parallelism: the exchange after the passes (loss values, centre, keys), made on first use. */
  #tail: { sums: SumExchange | null; gathers: Readback | null } | null = null;
  /** Data parallelism with shuffle-BN: the readback of this rank's slots of the key outputs. */
  #keyReader: Readback | null = null;
  /** Data parallelism with shuffle-BN: host arrays the routes use every step. */
  readonly #hostArrays = new Map<string, Float32Array<ArrayBuffer>>();
  /** Data parallelism: the gradient's chunked exchange during the last pass, made on first use. */
  #overlap: GradientOverlap | null = null;
  /** Data parallelism: where the step's time went (null on one device). */
  readonly commTimes: StepCommTimes | null;
  /** Bytes of plrc's GPU buffers each part of the step made when it was bound (their sum is the step's peak). */
  readonly bufferBytes: Record<StepBufferPart, number>;

  private constructor(p: StepParts) {
    this.gpu = p.gpu, this.cfg = p.cfg, this.online = p.online, this.momentum = p.momentum;
    this.q = p.q, this.kA1 = p.kA1, this.kB0 = p.kB0, this.losses = p.losses;
    this.sgd = p.sgd, this.emaDispatch = p.emaDispatch, this.ring = p.ring;
    this.lossTensors = p.lossTensors, this.owned = p.owned, this.gradDispatches = p.gradDispatches;
    this.#shuffleOrder = p.shuffleOrder, this.#accumulation = p.accumulation, this.#keySlices = p.keySlices;
    this.#ranks = p.ranks;
    this.bufferBytes = p.bufferBytes;
    this.commTimes = p.ranks ? { steps: 0, gpuAndReadback: 0, communication: 0, bytes: 0 } : null;
    const { q, kA1, kB0, losses: { image, point, distill }, accumulation } = p;
    // the momentum encoder's pass; with accumulation it runs over the whole batch before the online passes
    this.keyPass = [...kA1.forward, ...kB0.forward];
    this.unshuffle = [...p.unshuffle];
    // one online pass over the bound images: forward, losses, backward (without accumulation, after the keys)
    this.pass = [
      ...(accumulation ? [] : [...this.keyPass, ...p.unshuffle]),
      ...q.forward,
      ...image.forward,
      ...(point?.forward ?? []),
      ...(distill?.forward ?? []),
      ...image.backward,
      ...(point?.backward ?? []),
      ...(distill?.backward ?? []),
      ...p.gradDispatches,
      ...q.backward,
    ];
    // then, once per step: the optimizer, EMA, queue and centre
    this.update = [...p.optimDispatches, p.emaDispatch, ...image.enqueue];
    if (!accumulation) this.update.push(...(distill?.centerUpdate ?? []));
    // one step's work in recording order (with accumulation: one pass of each kind, for profiling)
    this.dispatches = [...(accumulation ? [...this.keyPass, ...p.unshuffle] : []), ...this.pass, ...this.update];
  }

  /**
   * Binds every kernel of the step for `cfg`. With `ranks` (more than one) this process runs its share of the
   * global batch `cfg.batch`: `cfg.accumulate` micro-batches of `cfg.batch / (ranks · accumulate)` images.
   */
  static async build(gpu: Gpu, cfg: StepConfig, ranks: StepRanks | null = null): Promise<PlrcStep> {
    if (ranks && ranks.size <= 1) ranks = null;
    const perRank = cfg.accumulate ?? 1, R = cfg.resolution;
    const m = perRank * (ranks?.size ?? 1); // micro-batches of the global batch
    if (!Number.isInteger(perRank) || perRank < 1 || cfg.batch % m) {
      throw new Error(
        `batch ${cfg.batch} does not split into ${m} equal micro-batches` +
          (ranks ? ` (${ranks.size} ranks × ${perRank} micro-batches each)` : ""),
      );
    }
    const B = cfg.batch / m; // images bound per pass: the whole batch, or one micro-batch
    const groups = Math.max(1, Math.floor(B / cfg.bnGroupSize));
    if (B % groups) throw new Error(`batch ${B} does not split into ghost-BN groups of ${cfg.bnGroupSize}`);
    // plrc's buffers by part of the step: every buffer is made here, once, so the growth of the bytes in use
    // over each stage of the build is that part's share of the peak
    const bufferBytes: Record<string, number> = {};
    let mark = bytesInUse(gpu);
    const part = (name: StepBufferPart) => {
      const now = bytesInUse(gpu);
      bufferBytes[name] = (bufferBytes[name] ?? 0) + now - mark;
      mark = now;
    };
    const online = createEncoderStore(gpu, cfg.encoder, cfg.seed);
    const momentum = createEncoderStore(gpu, cfg.encoder, cfg.seed);
    part("parameters");
    // the momentum encoder starts as a copy of the online one
    const fo = online.flat(), fm = momentum.flat();
    new Recorder(gpu).copyTensor(fo.params, fm.params).copyTensor(fo.stats, fm.stats).submit();

    const enc = (store: ParamStore, backward: boolean, reuseBackboneOf?: EncoderGraph) =>
      buildEncoder(gpu, store, cfg.encoder, { batch: B, resolution: R, backward, bnGroups: groups, reuseBackboneOf });
    const q = await enc(online, true);
    part("online encoder");
    // The key passes run before the online pass of the step (or of every micro-batch), when nothing in the
    // online backbone's buffers is live, and one after the other: both write their backbone activations into
    // the online backbone's buffers. Only their heads' outputs, which the losses read later, are their own.
    const share = cfg.shareKeyActivations === false ? undefined : q;
    const kA1 = await enc(momentum, false, share);
    const kB0 = await enc(momentum, false, share);
    part("momentum encoder");
    const { h, w } = q;
    const D = cfg.encoder.heads.pointDim;
    const arena = new TensorArena(gpu);
    const alloc = (shape: number[], name: string) => arena.alloc(shape, name);
    // accumulation: every micro-batch's keys wait here, to be enqueued together after the last
    const stepKeys = m > 1 ? alloc([cfg.batch, D], "keys of the step's micro-batches") : undefined;
    // Key outputs as the losses read them: the images of this pass, in image order.
    // - shuffle-BN: the key encoder sees the batch in a random image order; its outputs are gathered back.
    // - accumulation: the m key passes write into whole-batch buffers (gathered as a whole with shuffle-BN),
    //   and each online pass copies its micro-batch's slice into the tensors the losses read.
    const shuffle = !!cfg.shuffleBn;
    const unshuffle: Dispatch[] = [];
    const order: Tensor[] = [];
    if (shuffle) {
      for (const v of ["A1", "B0"]) {
        const o = arena.alloc([cfg.batch], `shuffle order ${v}`, "u32");
        o.upload(Uint32Array.from({ length: cfg.batch }, (_, i) => i));
        order.push(o);
      }
    }
    const keySlices: KeySlice[] = [];
    const keyIn = async (t: Tensor, view: 0 | 1): Promise<Tensor> => {
      const whole = m > 1 ? alloc([cfg.batch * t.numel / B], `${t.name} (whole batch)`) : t;
      let ordered = whole;
      if (shuffle) {
        ordered = alloc([...whole.shape], `${t.name} (image order)`);
        unshuffle.push(await gatherBlocks(gpu, whole, order[view], ordered, cfg.batch));
      }
      if (m === 1) return ordered;
      const input = alloc([...t.shape], `${t.name} (this micro-batch)`);
      keySlices.push({ view, output: t, whole, ordered, input });
      return input;
    };
    const kA1y1 = await keyIn(kA1.heads.y1, 0), kA1z = await keyIn(kA1.heads.z, 0);
    const kB0z = await keyIn(kB0.heads.z, 1), kB0l = await keyIn(kB0.heads.logits, 1);

    const image = await buildImageContrast(gpu, {
      y1A0: q.heads.y1,
      y1A1: kA1y1,
      batch: B,
      hw: h * w,
      dim: D,
      queueSize: cfg.queueSize,
      temperature: cfg.temperatures.image,
      seed: cfg.seed,
      stepKeys,
    });
    const point = cfg.method !== "moco"
      ? await buildPointContrast(gpu, {
        y1A0: q.heads.y1,
        y1A1: kA1y1,
        batch: B,
        h,
        w,
        dim: D,
        pointsPerImage: cfg.regions * cfg.points,
        temperature: cfg.temperatures.point,
        scale: cfg.temperatures.point / cfg.temperatures.pointBase,
        pool: cfg.method === "detcon" ? cfg.points : 1,
      })
      : null;
    const distill = cfg.method === "plrc"
      ? await buildDistillation(gpu, {
        zq: q.heads.z,
        lq: q.heads.logits,
        zt: kB0z,
        lt: kB0l,
        za: kA1z,
        batch: B,
        h,
        w,
        S: R / 4,
        dimZ: cfg.encoder.heads.bottleneck,
        K: cfg.encoder.heads.prototypes,
        maxPairs: cfg.maxPairsPerImage * B,
        tauS: cfg.temperatures.student,
        tauT: cfg.temperatures.teacher,
        alpha: cfg.affinityScale,
        centerMomentum: cfg.centerMomentum,
      })
      : null;

    part("losses");
    // weighted loss gradients into the online heads' output gradients
    const wt = cfg.weights;
    const gradDispatches: Dispatch[] = [await scale(gpu, image.dY1, wt.image, q.heads.dY1!)];
    if (point) gradDispatches.push(await axpy(gpu, wt.point, point.dY1, q.heads.dY1!));
    if (distill) {
      gradDispatches.push(await scale(gpu, distill.dZq, wt.distill, q.heads.dZ!));
      gradDispatches.push(await scale(gpu, distill.dLq, wt.distill, q.heads.dLogits!));
    } else {
      q.heads.dZ!.fill(0);
      q.heads.dLogits!.fill(0);
    }

    const f = online.flat();
    let sgd: Dispatch;
    const optimDispatches: Dispatch[] = [];
    if (cfg.optim.lars) {
      const segments = [...online.entries.values()]
        .filter((e) => e.spec.kind !== "running_mean" && e.spec.kind !== "running_var")
        .map((e) => ({
          offset: e.offset,
          numel: e.numel,
          adapt: e.spec.kind === "conv" || e.spec.kind === "linear_weight",
        }));
      const l = arena.adopt(
        await larsStep(gpu, f.params, f.grads, f.momentum, segments, {
          ...cfg.optim,
          eta: cfg.optim.larsTrust ?? 0.001,
        }),
      );
      optimDispatches.push(...l.dispatches);
      sgd = l.dispatches[l.dispatches.length - 1];
    } else {
      sgd = await sgdStep(gpu, f.params, f.grads, f.momentum, f.wdMask, cfg.optim);
      optimDispatches.push(sgd);
    }
    const emaDispatch = await emaUpdate(gpu, momentum.flat().params, f.params, cfg.ema);
    const zero = alloc([1], "zero loss");
    zero.fill(0);
    const lossTensors = [
      image.loss,
      point?.loss ?? zero,
      distill?.loss ?? zero,
      distill?.alignment ?? zero,
      distill?.entropy ?? zero,
    ];
    part("optimizer");
    const accumulation = m > 1
      ? await buildAccumulation(gpu, m, f.grads, lossTensors, image.keys, stepKeys!, distill?.center ?? null)
      : null;
    if (accumulation) arena.adopt(accumulation);
    part("accumulation");
    const ring = new MetricsRing(gpu, accumulation?.losses ?? lossTensors);
    part("metrics ring");
    return new PlrcStep({
      gpu,
      cfg,
      online,
      momentum,
      q,
      kA1,
      kB0,
      losses: { image, point, distill },
      gradDispatches,
      optimDispatches,
      sgd,
      emaDispatch,
      ring,
      lossTensors,
      unshuffle,
      shuffleOrder: order,
      accumulation,
      keySlices,
      ranks,
      owned: arena.owned,
      bufferBytes: bufferBytes as Record<StepBufferPart, number>,
    });
  }

  /**
   * Uploads one batch (views, points, pairs). With shuffle-BN the key views go up in a random image order
   * drawn from the seed and `stepIndex` (so resume stays exact).
   */
  upload(b: PlrcBatch, stepIndex = 0): void {
    const ranks = this.#ranks;
    if (b.n !== this.localBatch) {
      throw new Error(
        `step: a batch of ${b.n} images, bound for ${this.localBatch}` +
          (ranks ? ` on each of ${ranks.size} ranks` : ""),
      );
    }
    if (ranks) {
      // the key views are prepared in run(): with shuffle-BN they are all-gathered first
      const own = this.#accumulation!.parts / ranks.size;
      this.#micro = {
        batches: splitBatch(b, own),
        keyViews: [b.viewA1, b.viewB0],
        keyFirst: ranks.rank * own,
        stepIndex,
      };
      return;
    }
    const keyViews = this.#keyViews(b.n, [b.viewA1, b.viewB0], stepIndex);
    if (this.#accumulation) {
      // the passes' images go up one by one in run(), each before its own submission
      this.#micro = { batches: splitBatch(b, this.#accumulation.parts), keyViews, keyFirst: 0, stepIndex };
      return;
    }
    this.kA1.input.upload(keyViews[0]);
    this.kB0.input.upload(keyViews[1]);
    this.#uploadOnline(b);
  }

  /**
   * The A1 and B0 views in the order the key encoder sees them: with shuffle-BN, a random image order per
   * view, drawn from the seed and the step (its inverse goes up for the gathers); else as they are.
   */
  #keyViews(B: number, views: [Float32Array, Float32Array], stepIndex: number): [Float32Array, Float32Array] {
    if (!this.#shuffleOrder.length) return views;
    const per = views[0].length / B;
    const perms = this.#drawPermutations(stepIndex);
    return views.map((view, k) => {
      const perm = perms[k]; // slot j holds image perm[j]
      const shuffled = new Float32Array(view.length);
      perm.forEach((img, j) => shuffled.set(view.subarray(img * per, (img + 1) * per), j * per));
      this.#shuffleOrder[k].upload(invertPermutation(perm)); // image i sits in slot inv[i]
      return shuffled;
    }) as [Float32Array, Float32Array];
  }

  /** Shuffle-BN: the image order of the key views A1 and B0 at `stepIndex` (slot j holds image perm[j]). */
  #drawPermutations(stepIndex: number): [number[], number[]] {
    const rng = Rng.derive(this.cfg.seed ^ 0x5bf1, stepIndex), B = this.cfg.batch;
    const a = rng.shuffle(Array.from({ length: B }, (_, i) => i));
    return [a, rng.shuffle(Array.from({ length: B }, (_, i) => i))];
  }

  /** Uploads what the online pass over `b` reads: view A0, points and matched pairs. */
  #uploadOnline(b: PlrcBatch): void {
    this.q.input.upload(b.viewA0);
    if (this.losses.point) this.losses.point.upload(pointInputsFromBatch(b, this.q.h, this.q.w));
    if (this.losses.distill) {
      const max = this.cfg.maxPairsPerImage * b.n;
      const n = Math.min(b.pairA.length, max);
      this.losses.distill.upload({
        pairA: b.pairA.subarray(0, n),
        pairB: b.pairB.subarray(0, n),
        pairImage: b.pairImage.subarray(0, n),
      });
    }
  }

  /**
   * Records and submits one step. Returns the loss scalars of an earlier step when the metrics ring
   * comes round (no wait for the current one).
   */
  async run(step: number, s: StepSchedule, profiler: Profiler | null = null): Promise<StepScalars | null> {
    this.sgd.setParams({ lr: s.lr });
    this.emaDispatch.setParams({ m: s.ema });
    this.losses.distill?.setTeacherTemperature(s.teacherTemperature);
    this.losses.image.setPointer(this.#queuePtr);
    this.#queuePtr = (this.#queuePtr + this.cfg.batch) % this.cfg.queueSize;
    // with a profiler each dispatch gets its own timed pass: slower, same results
    const acc = this.#accumulation;
    if (!acc) {
      const rec = new Recorder(this.gpu, profiler);
      const old = await this.ring.begin(rec);
      rec.runAll(this.dispatches);
      this.ring.end(rec, step);
      rec.submit();
      this.ring.afterSubmit();
      return old;
    }
    // kept: every pass re-uploads its micro-batch, so running again repeats the step's data (as bench does)
    const micro = this.#micro;
    if (!micro) throw new Error("step: run() before upload()");
    const ranks = this.#ranks;
    const own = acc.parts / (ranks?.size ?? 1), first = (ranks?.rank ?? 0) * own;
    let keyViews = micro.keyViews;
    const keyFirst = micro.keyFirst;
    const overlap = ranks ? await this.#gradientOverlap() : null;
    let gradReads: Promise<Float32Array<ArrayBuffer>[]>[] | null = null;
    let routes: ShuffleRoutes[] | null = null;
    if (ranks && this.#shuffleOrder.length) {
      // shuffle-BN across ranks: every rank draws the same permutations and receives the images of its slots
      routes = this.#drawPermutations(micro.stepIndex).map((p) => shuffleRoutes(p, ranks.size, ranks.rank));
      keyViews = await this.#routeKeyViews(routes, keyViews);
    }
    // one submission per micro-batch: its upload is queued after the previous submission, so no wait
    let rec = new Recorder(this.gpu, profiler);
    const old = await this.ring.begin(rec);
    acc.begin(rec);
    // the momentum encoder over this process's micro-batches (their slots of the shuffled batch with shuffle-BN)
    const inputs = [this.kA1.input, this.kB0.input];
    for (let j = first; j < first + own; j++) {
      const at = j - keyFirst;
      inputs.forEach((t, k) => t.upload(keyViews[k].subarray(at * t.numel, (at + 1) * t.numel)));
      rec.runAll(this.keyPass);
      for (const s of this.#keySlices) {
        rec.copy(
          s.output.buffer,
          s.output.byteOffset,
          s.whole.buffer,
          s.whole.byteOffset + j * s.output.byteLength,
          s.output.byteLength,
        );
      }
      rec.submit();
      rec = new Recorder(this.gpu, profiler);
    }
    if (routes) {
      // each slot's key outputs go back to the rank that owns its image, in that rank's image order
      await this.#returnKeyOutputs(routes, first, own);
    } else {
      rec.runAll(this.unshuffle);
    }
    // then the online passes, each with its micro-batch's slice of the key outputs
    for (let i = first; i < first + own; i++) {
      if (i > first) rec = new Recorder(this.gpu, profiler);
      this.#uploadOnline(micro.batches[i - first]);
      for (const s of this.#keySlices) {
        rec.copy(
          s.ordered.buffer,
          s.ordered.byteOffset + i * s.input.byteLength,
          s.input.buffer,
          s.input.byteOffset,
          s.input.byteLength,
        );
      }
      if (overlap && i === first + own - 1) {
        // the last pass goes in segments: after the last write to a gradient chunk, that chunk's share of the
        // sum is added and copied out, and the segment submitted, so its readback and all-reduce can start
        // while the rest of the backward runs
        const flush = (chunks: number[]) => {
          for (const k of chunks) {
            rec.run(i === first ? overlap.collect[k].first : overlap.collect[k].next);
            overlap.exchange.reader(k).record(rec);
          }
          rec.submit();
          for (const k of chunks) gradReads![k] = overlap.exchange.reader(k).collect();
          rec = new Recorder(this.gpu, profiler);
        };
        gradReads = new Array(overlap.exchange.chunks);
        this.pass.forEach((d, j) => {
          rec.run(d);
          const done = overlap.after.get(j);
          if (done) flush(done);
        });
        acc.collect(rec, i, i === first, false);
      } else {
        rec.runAll(this.pass);
        acc.collect(rec, i, i === first);
      }
      if (this.losses.distill) acc.moveCenter(rec, i === first, this.losses.distill.centerUpdate);
      if (i < first + own - 1) rec.submit();
    }
    if (ranks && overlap && gradReads) {
      // this rank's partial sums (÷ M) become the whole step's, and its keys join the others'
      rec.submit();
      const t0 = performance.now();
      const g = await overlap.exchange.run(gradReads, overlap.order);
      this.#count(t0, g.readbackMs, g.bytes);
      await this.#exchange(
        [
          ...acc.losses.map((t) => ({ tensor: t })),
          ...(acc.centerSum && this.losses.distill ? [{ tensor: acc.centerSum, to: this.losses.distill.center }] : []),
        ],
        [{ tensor: acc.stepKeys, part: this.losses.image.keys.byteLength }],
        first,
        own,
      );
      this.commTimes!.steps++;
      rec = new Recorder(this.gpu, profiler);
    } else {
      acc.end(rec);
    }
    rec.runAll(this.update);
    this.ring.end(rec, step);
    rec.submit();
    this.ring.afterSubmit();
    return old;
  }

  /**
   * Data parallelism: reads back what a step exchanges after its passes (gradient, loss values, centre, this
   * rank's keys), without exchanging it: what `bench step` times as the readback alone.
   */
  async readExchanged(): Promise<void> {
    const e = this.#tail;
    await Promise.all([this.#overlap?.exchange.readOnly(), e?.sums?.readOnly(), e?.gathers?.read()]);
  }

  /**
   * Data parallelism: how the gradient leaves during the last pass. The mean gradient is cut into chunks
   * (`ranks.chunkBytes`); each chunk gets its own share of the micro-batch sum and is read back right after
   * the last dispatch of the pass that writes into it (found from the dispatches' write ranges), so the late
   * layers' chunks are on their way while the early layers' backward still runs.
   */
  async #gradientOverlap(): Promise<GradientOverlap> {
    if (this.#overlap) return this.#overlap;
    const acc = this.#accumulation!, ranks = this.#ranks!, f = this.online.flat(), y = acc.gradSum;
    const chunkBytes = Math.max(256, Math.floor((ranks.chunkBytes ?? 16 << 20) / 256) * 256);
    const exchange = new SumExchange(this.gpu, ranks, [{
      buffer: y.buffer,
      offset: y.byteOffset,
      bytes: y.byteLength,
      to: { buffer: f.grads.buffer, offset: f.grads.byteOffset },
    }], chunkBytes);
    const w = 1 / acc.parts, gb = f.grads.buffer;
    const collect: GradientOverlap["collect"] = [], spans: [number, number][] = [];
    for (let k = 0; k < exchange.chunks; k++) {
      const [r] = exchange.chunkRanges(k), at = r.offset - y.byteOffset, n = r.bytes / 4;
      const yv = Tensor.view(this.gpu, y.buffer, y.byteOffset + at, [n], "f32", `mean gradient, chunk ${k}`);
      const xv = Tensor.view(this.gpu, gb, f.grads.byteOffset + at, [n], "f32", `gradient, chunk ${k}`);
      collect.push({ first: await scale(this.gpu, xv, w, yv), next: await axpy(this.gpu, w, xv, yv) });
      spans.push([f.grads.byteOffset + at, f.grads.byteOffset + at + r.bytes]);
    }
    // the last dispatch of a pass that writes into each chunk (the first, for a chunk nothing writes)
    const last = spans.map(() => 0);
    this.pass.forEach((d, j) => {
      for (const wr of d.writes) {
        if (wr.buffer !== gb) continue;
        spans.forEach(([a, b], k) => {
          if (wr.offset < b && a < wr.offset + wr.bytes) last[k] = j;
        });
      }
    });
    const after = new Map<number, number[]>();
    last.forEach((j, k) => after.set(j, [...(after.get(j) ?? []), k]));
    const order = last.map((j, k) => [j, k]).sort((a, b) => a[0] - b[0] || a[1] - b[1]).map(([, k]) => k);
    this.#overlap = { exchange, collect, after, order };
    return this.#overlap;
  }

  /** Shuffle-BN across ranks: this rank's key views (its images) → the images of its slots, in slot order. */
  async #routeKeyViews(
    routes: ShuffleRoutes[],
    views: [Float32Array, Float32Array],
  ): Promise<[Float32Array, Float32Array]> {
    const t = performance.now(), per = views[0].length / this.localBatch;
    const slotted: [Float32Array, Float32Array] = [
      this.#host("key view A1 slots", views[0].length),
      this.#host("key view B0 slots", views[1].length),
    ];
    for (const k of [0, 1]) {
      const scratch = {
        send: this.#host("route send", views[k].length),
        recv: this.#host("route recv", views[k].length),
      };
      await routeBlocks(this.#ranks!, views[k], slotted[k], per, routes[k].sendImages, routes[k].recvSlots, scratch);
    }
    this.#count(t, 0, views[0].byteLength * 2);
    return slotted;
  }

  /**
   * Shuffle-BN across ranks: reads back this rank's slots of every key output, sends each slot's rows to the
   * rank that owns its image, and uploads the rows received into this rank's images of the image-ordered
   * outputs the online passes read.
   */
  async #returnKeyOutputs(routes: ShuffleRoutes[], first: number, own: number): Promise<void> {
    const ranks = this.#ranks!, b = this.localBatch;
    const t0 = performance.now();
    let reader = this.#keyReader;
    if (!reader) {
      reader = this.#keyReader = new Readback(
        this.gpu,
        this.#keySlices.map((s) => ({
          buffer: s.whole.buffer,
          offset: s.whole.byteOffset + first * s.output.byteLength,
          bytes: own * s.output.byteLength,
        })),
        "shuffle-BN key outputs",
      );
    }
    const host = await reader.read();
    const t1 = performance.now();
    for (const [k, s] of this.#keySlices.entries()) {
      const per = host[k].length / b, r = routes[s.view];
      const n = host[k].length, mine = this.#host(`key output ${k}`, n);
      const scratch = { send: this.#host(`key output ${k} send`, n), recv: this.#host(`key output ${k} recv`, n) };
      await routeBlocks(ranks, host[k], mine, per, r.recvSlots, r.sendImages, scratch);
      this.gpu.device.queue.writeBuffer(s.ordered.buffer, s.ordered.byteOffset + ranks.rank * b * per * 4, mine);
    }
    this.#count(t0, t1 - t0, reader.bytes);
  }

  /** A host array of `n` floats kept under `name` from step to step (a fresh one costs its first touch). */
  #host(name: string, n: number): Float32Array<ArrayBuffer> {
    let a = this.#hostArrays.get(name);
    if (a?.length !== n) this.#hostArrays.set(name, a = new Float32Array(n));
    return a;
  }

  #count(t0: number, gpuMs: number, bytes: number): void {
    const c = this.commTimes!;
    c.gpuAndReadback += gpuMs;
    c.communication += performance.now() - t0 - gpuMs;
    c.bytes += bytes;
  }

  /**
   * Data parallelism: combines tensors over the ranks after the work submitted so far. `sums` are summed
   * (into `to`, or in place) through a {@link SumExchange}; each of `gathers` is all-gathered from this
   * rank's parts `first … first + own − 1` (each `part` bytes) so that every rank holds all parts. Their
   * readbacks go through staging buffers kept from step to step (the same tensors every time); the
   * collectives run in the same order on every rank: the sums' all-reduces, then the all-gathers.
   */
  async #exchange(
    sums: { tensor: Tensor; to?: Tensor }[],
    gathers: { tensor: Tensor; part: number }[],
    first: number,
    own: number,
  ): Promise<void> {
    const ranks = this.#ranks!;
    const t0 = performance.now();
    let point = this.#tail;
    if (!point) {
      point = this.#tail = {
        sums: sums.length
          ? new SumExchange(
            this.gpu,
            ranks,
            sums.map(({ tensor: t, to }) => ({
              buffer: t.buffer,
              offset: t.byteOffset,
              bytes: t.byteLength,
              to: to ? { buffer: to.buffer, offset: to.byteOffset } : undefined,
            })),
          )
          : null,
        gathers: gathers.length
          ? new Readback(
            this.gpu,
            gathers.map((x) => ({
              buffer: x.tensor.buffer,
              offset: x.tensor.byteOffset + first * x.part,
              bytes: own * x.part,
            })),
            "exchange: keys",
          )
          : null,
      };
    }
    const gathered = point.gathers?.read();
    let readMs = 0;
    if (point.sums) readMs += (await point.sums.run()).readbackMs;
    if (gathered) {
      const t = performance.now();
      const host = await gathered;
      readMs += performance.now() - t;
      for (let k = 0; k < gathers.length; k++) gathers[k].tensor.upload(await ranks.allgather(host[k]));
    }
    this.#count(t0, readMs, (point.sums?.bytes ?? 0) + (point.gathers?.bytes ?? 0));
  }

  /** The step's loss values as the metrics ring reads them (the micro-batches' mean with accumulation). */
  get lossValues(): Tensor[] {
    return this.#accumulation?.losses ?? this.lossTensors;
  }

  /**
   * Data parallelism, after the first step: the gradient's chunks and the submissions the last pass was cut
   * into to read them back early (null on one process).
   */
  get gradientExchange(): { chunks: number; segments: number } | null {
    const o = this.#overlap;
    return o ? { chunks: o.exchange.chunks, segments: o.after.size } : null;
  }

  /** Images this process uploads per step: the global batch, or its share of it on one rank of many. */
  get localBatch(): number {
    return this.cfg.batch / (this.#ranks?.size ?? 1);
  }

  /** Dispatches recorded in one step (a profiler's capacity). */
  get dispatchesPerStep(): number {
    const a = this.#accumulation;
    const centre = this.losses.distill?.centerUpdate.length ?? 0;
    const parts = a ? a.parts / (this.#ranks?.size ?? 1) : 1;
    return a
      ? parts * (this.keyPass.length + this.pass.length + a.perPass + centre) + this.unshuffle.length +
        this.update.length
      : this.dispatches.length;
  }

  /** The ring position of the queue (saved in checkpoints). */
  get queuePointer(): number {
    return this.#queuePtr;
  }
  set queuePointer(p: number) {
    this.#queuePtr = p;
  }

  /** Frees every GPU tensor of the step. */
  dispose(): void {
    for (const g of [this.q, this.kA1, this.kB0]) g.dispose();
    for (const l of [this.losses.image, this.losses.point, this.losses.distill]) {
      for (const t of l?.owned ?? []) t.dispose();
    }
    for (const t of this.owned) t.dispose();
    this.#tail?.sums?.destroy(), this.#tail?.gathers?.destroy();
    this.#keyReader?.destroy();
    this.#overlap?.exchange.destroy();
    this.ring.destroy();
  }
}

/**
 * The buffers and dispatches of gradient accumulation over `parts` micro-batches: the mean of their
 * gradients and loss values, their keys gathered for one enqueue, and the distillation centre moved once.
 */
interface Accumulation extends OwnsTensors {
  parts: number;
  /** Dispatches it adds after each pass. */
  perPass: number;
  /** The mean loss values (what the metrics ring reads). */
  losses: Tensor[];
  /** The mean gradient (a partial sum on one rank of many). */
  gradSum: Tensor;
  /** The mean of the micro-batches' moved centres (null without distillation). */
  centerSum: Tensor | null;
  /** Every micro-batch's keys, in micro-batch order. */
  stepKeys: Tensor;
  /** Before the first micro-batch: keep the centre the losses must all see. */
  begin(rec: Recorder): void;
  /**
   * After micro-batch `i`'s pass: add its gradients (unless `grads` is false: added chunk by chunk elsewhere)
   * and losses (÷ parts; `first`: start the sums), keep its keys.
   */
  collect(rec: Recorder, i: number, first: boolean, grads?: boolean): void;
  /** After a pass: its centre update, added (÷ parts; `first`: start the sum), then the kept centre put back. */
  moveCenter(rec: Recorder, first: boolean, centerUpdate: Dispatch[]): void;
  /** After the last: the mean gradient where the optimizer reads it, the mean centre in place. */
  end(rec: Recorder): void;
}

async function buildAccumulation(
  gpu: Gpu,
  parts: number,
  grads: Tensor,
  losses: Tensor[],
  keys: Tensor,
  stepKeys: Tensor,
  center: Tensor | null,
): Promise<Accumulation> {
  const arena = new TensorArena(gpu);
  const T = (like: Tensor, name: string) => arena.alloc([like.numel], name);
  const w = 1 / parts;
  // the first micro-batch writes the sums (y = w·x), the others add to them (y += w·x)
  const meanOf = async (x: Tensor, name: string) => {
    const y = T(x, name);
    return { y, first: await scale(gpu, x, w, y), next: await axpy(gpu, w, x, y) };
  };
  const g = await meanOf(grads, "mean gradient");
  const l = await Promise.all(losses.map((t, k) => meanOf(t, `mean ${STEP_SCALARS[k]}`)));
  const c = center ? await meanOf(center, "mean centre") : null;
  const kept = center ? T(center, "centre of the step") : null;
  return {
    parts,
    perPass: 1 + l.length + (c ? 1 + 1 : 0),
    losses: l.map((x) => x.y),
    gradSum: g.y,
    centerSum: c?.y ?? null,
    stepKeys,
    owned: arena.owned,
    begin(rec) {
      if (center && kept) rec.copyTensor(center, kept);
    },
    collect(rec, i, first, grads = true) {
      for (const x of grads ? [g, ...l] : l) rec.run(first ? x.first : x.next);
      rec.copy(
        keys.buffer,
        keys.byteOffset,
        stepKeys.buffer,
        stepKeys.byteOffset + i * keys.byteLength,
        keys.byteLength,
      );
    },
    moveCenter(rec, first, centerUpdate) {
      if (!c || !center || !kept) return;
      rec.runAll(centerUpdate);
      rec.run(first ? c.first : c.next);
      rec.copyTensor(kept, center);
    },
    end(rec) {
      rec.copyTensor(g.y, grads);
      if (c && center) rec.copyTensor(c.y, center);
    },
  };
}

/** Data parallelism: the gradient's exchange during the last pass (see `PlrcStep.#gradientOverlap`). */
interface GradientOverlap {
  /** The mean gradient, chunk by chunk, summed over the ranks into the gradient the optimizer reads. */
  exchange: SumExchange;
  /** Per chunk: its share of the micro-batch sum (`first` starts it, `next` adds). */
  collect: { first: Dispatch; next: Dispatch }[];
  /** Pass dispatch index → the chunks whose last write it is. */
  after: Map<number, number[]>;
  /** Chunks in the order they become final (the same on every rank). */
  order: number[];
}

/** Accumulation: one key-encoder output, its whole-batch buffers, and the micro-batch slice the losses read. */
interface KeySlice {
  /** The key view it comes from: 0 for A1, 1 for B0. */
  view: 0 | 1;
  output: Tensor;
  whole: Tensor;
  ordered: Tensor;
  input: Tensor;
}
