/**
 * The sample worker (src/data/feeder.ts starts it): rebuilds the training source from its {@link SourceSpec} once,
 * then makes one sample per request, `makeKeyedSample(source.get(index), key)` exactly as the main thread
 * would, and answers it with its arrays transferred.
 *
 * @module
 */
import { type DataConfig, makeKeyedSample, type PlrcSample, sampleBuffers } from "./batch.ts";
import { sourceFromSpec, type SourceSpec } from "./sources.ts";
import { serveThread } from "./threads.ts";

/** What a sample worker is started with. */
export interface SampleInit {
  /** How to rebuild the image source in the worker. */
  spec: SourceSpec;
  /** How samples are made. */
  data: DataConfig;
}

/** One sample to make: source image `index`, stream key `key`. */
export interface SampleRequest {
  /** Index of the source image. */
  index: number;
  /** Stream key of the sample. */
  key: number;
}

serveThread<SampleInit, SampleRequest, PlrcSample>(({ spec, data }) => {
  const source = sourceFromSpec(spec);
  return async ({ index, key }) => {
    const sample = makeKeyedSample({ ...(await source.get(index)), key }, data);
    return { result: sample, transfer: sampleBuffers(sample) };
  };
});
