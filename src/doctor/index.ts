/**
 * Connection diagnosis: {@link diagnose} and its report types.
 *
 * @module doctor
 */
export {
  diagnose,
  DIAGNOSE_EXIT_CODES,
  DIAGNOSE_STEPS,
  type DiagnoseOptions,
  type DiagnoseReport,
  type DiagnoseStep,
  type DiagnoseStepName,
} from './diagnose.js';
export { parseTarget, targetClientOptions, type TargetOptions } from './effective.js';
