namespace AsyncDiffusion.Schedulers;

/// <summary>
/// A scheduler whose step takes diffusers' <c>eta</c> (DDIM's and TCD's stochasticity, 0 to 1).
/// The pipelines pass the request's eta, as <c>prepare_extra_step_kwargs</c> does.
/// </summary>
public interface IEtaScheduler
{
    double Eta { get; set; }
}
