//! The layer planner: which wheels share a layer.
//!
//! overlay filesystems fail past about 125 stacked layers, and the base image's layers
//! count too, so envbuild keeps every image under a budget (`--max-layers`, default
//! 100). Within it, the plan must be *stable*: changing, adding or removing one package
//! must change one layer, never reshuffle the others. So:
//!
//! - a wheel whose file is at least [`LARGE_WHEEL_BYTES`] gets a layer of its own (big
//!   wheels are the ones worth sharing between services in a registry);
//! - every other wheel goes to one of [`BUCKETS`] buckets, chosen by a hash of its
//!   normalized name, which depends on nothing else;
//! - when the budget is too small for that, the largest wheels keep their own layers
//!   and the rest fall back into the buckets; when even the buckets do not fit, the
//!   bucket count shrinks to what fits (and the plan says so through the layer count).
//!
//! Layers are ordered by the name of their first package, so the order is a function
//! of the package set alone. See docs/layering.md for the trade-offs.

use crate::digest::Sha256Digest;
use crate::lock::PackageName;

/// Wheels at least this large (compressed file size) get a layer of their own.
pub const LARGE_WHEEL_BYTES: u64 = 1024 * 1024;

/// Number of buckets small wheels are spread over.
pub const BUCKETS: usize = 8;

/// One wheel as the planner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanInput {
    /// Normalized package name.
    pub name: PackageName,
    /// Size of the wheel file in bytes.
    pub size: u64,
}

/// The planned layers: each is a list of indices into the planner's input, in input
/// order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerPlan {
    /// Wheel indices per layer, in image order.
    pub layers: Vec<Vec<usize>>,
}

/// The budget cannot hold even one layer for the wheels.
#[derive(Debug, thiserror::Error)]
#[error(
    "the layer budget is {max_layers} but the base image already has {base_layers} layers and the virtual environment needs one more: raise `--max-layers` (overlay filesystems allow about 125) or use a base image with fewer layers"
)]
pub struct LayerBudgetError {
    /// `--max-layers`.
    pub max_layers: usize,
    /// Layers of the base image.
    pub base_layers: usize,
}

fn bucket_of(name: &PackageName, buckets: usize) -> usize {
    let digest = Sha256Digest::of(name.as_str().as_bytes());
    let mut prefix = [0u8; 8];
    prefix.copy_from_slice(&digest.as_bytes()[..8]);
    (u64::from_be_bytes(prefix) % buckets as u64) as usize
}

/// Plan layers for `wheels` given the total budget and the layers already used by the
/// base image and the virtual-environment skeleton (`fixed_layers`).
pub fn plan_layers(
    wheels: &[PlanInput],
    max_layers: usize,
    fixed_layers: usize,
) -> Result<LayerPlan, LayerBudgetError> {
    if wheels.is_empty() {
        return Ok(LayerPlan { layers: Vec::new() });
    }
    let available = max_layers.saturating_sub(fixed_layers);
    if available == 0 {
        return Err(LayerBudgetError {
            max_layers,
            base_layers: fixed_layers.saturating_sub(1),
        });
    }

    // Large wheels, biggest first (ties by name) so that a tight budget keeps the
    // biggest ones apart.
    let mut large: Vec<usize> = (0..wheels.len())
        .filter(|&index| wheels[index].size >= LARGE_WHEEL_BYTES)
        .collect();
    large.sort_by(|&a, &b| {
        wheels[b]
            .size
            .cmp(&wheels[a].size)
            .then_with(|| wheels[a].name.cmp(&wheels[b].name))
    });

    let small_count = wheels.len() - large.len();
    let buckets = BUCKETS.min(available);
    // Room for own layers: everything not reserved for buckets (only reserve buckets
    // when some wheel will land in one).
    let own_room = if small_count == 0 && large.len() <= available {
        available
    } else {
        available - buckets
    };
    large.truncate(own_room);

    let mut layers: Vec<Vec<usize>> = large.iter().map(|&index| vec![index]).collect();
    let bucket_count = buckets.max(1);
    let mut bucketed: Vec<Vec<usize>> = vec![Vec::new(); bucket_count];
    for (index, wheel) in wheels.iter().enumerate() {
        if !large.contains(&index) {
            bucketed[bucket_of(&wheel.name, bucket_count)].push(index);
        }
    }
    layers.extend(bucketed.into_iter().filter(|bucket| !bucket.is_empty()));
    for layer in &mut layers {
        layer.sort_by(|&a, &b| wheels[a].name.cmp(&wheels[b].name));
    }
    layers.sort_by(|a, b| wheels[a[0]].name.cmp(&wheels[b[0]].name));
    Ok(LayerPlan { layers })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(name: &str, size: u64) -> PlanInput {
        PlanInput {
            name: name.parse::<PackageName>().unwrap(),
            size,
        }
    }

    fn names(wheels: &[PlanInput], plan: &LayerPlan) -> Vec<Vec<String>> {
        plan.layers
            .iter()
            .map(|layer| layer.iter().map(|&i| wheels[i].name.to_string()).collect())
            .collect()
    }

    #[test]
    fn large_wheels_get_own_layers_small_share_buckets() {
        let wheels: Vec<PlanInput> = (0..30)
            .map(|i| input(&format!("pkg{i:02}"), 10_000))
            .chain([input("numpy", 16_000_000), input("scipy", 30_000_000)])
            .collect();
        let plan = plan_layers(&wheels, 100, 5).unwrap();
        let listed = names(&wheels, &plan);
        assert!(listed.contains(&vec!["numpy".to_string()]));
        assert!(listed.contains(&vec!["scipy".to_string()]));
        assert!(plan.layers.len() <= 2 + BUCKETS);
        let mut all: Vec<usize> = plan.layers.concat();
        all.sort();
        assert_eq!(all, (0..wheels.len()).collect::<Vec<_>>());
    }

    #[test]
    fn changing_one_package_changes_one_layer() {
        let before: Vec<PlanInput> = (0..40).map(|i| input(&format!("p{i}"), 5_000)).collect();
        let mut after = before.clone();
        after.push(input("newcomer", 5_000));
        let first = names(&before, &plan_layers(&before, 100, 3).unwrap());
        let second = names(&after, &plan_layers(&after, 100, 3).unwrap());
        let changed = second.iter().filter(|layer| !first.contains(layer)).count();
        assert_eq!(changed, 1, "{first:?}\n{second:?}");
    }

    #[test]
    fn tight_budget_is_respected() {
        let wheels: Vec<PlanInput> = (0..20)
            .map(|i| input(&format!("big{i}"), 2_000_000 + i))
            .collect();
        let plan = plan_layers(&wheels, 10, 4).unwrap();
        assert!(plan.layers.len() <= 6, "{}", plan.layers.len());
        assert_eq!(plan.layers.concat().len(), 20);
        let plan = plan_layers(&wheels, 6, 5).unwrap();
        assert_eq!(plan.layers.len(), 1);
    }

    #[test]
    fn err_no_room() {
        let wheels = vec![input("a", 1)];
        let error = plan_layers(&wheels, 5, 5).unwrap_err();
        assert!(error.to_string().contains("--max-layers"));
    }

    #[test]
    fn order_is_independent_of_input_order() {
        let wheels: Vec<PlanInput> = (0..25).map(|i| input(&format!("q{i}"), 3_000)).collect();
        let mut reversed = wheels.clone();
        reversed.reverse();
        assert_eq!(
            names(&wheels, &plan_layers(&wheels, 100, 2).unwrap()),
            names(&reversed, &plan_layers(&reversed, 100, 2).unwrap())
        );
    }
}
